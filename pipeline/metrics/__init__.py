"""Scores of explanations: faithfulness (deletion/insertion) and localisation against known parts."""
