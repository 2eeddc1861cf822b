"""`winnow audit`: find what is wrong with a dataset before anyone trains on it (see `runner.audit`)."""
