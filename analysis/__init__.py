"""Analysis of run directories (docs/run-directory.md): loaders, comparisons, figures, report."""
