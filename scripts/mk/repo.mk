# Repository delivery (hooks, docs, package generator). Included by the root Makefile.
