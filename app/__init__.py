"""The study server: studies from YAML, participants in a browser, answers in SQL. No torch here."""
