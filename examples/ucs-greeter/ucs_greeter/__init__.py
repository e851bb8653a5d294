"""An example UCS plugin package (see examples/ucs-greeter/README.md)."""
