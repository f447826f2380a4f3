"""Reading the pipeline's asset runs (manifest.json and the files it lists)."""
