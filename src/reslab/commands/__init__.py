"""One module per ``reslab`` sub-command."""
