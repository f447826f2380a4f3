"""The `fieldmark` command line, which drives both the pipeline and the study server."""
