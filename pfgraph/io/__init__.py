"""ROOT input/output: the data contract (schema), writer/reader and torch datasets."""
