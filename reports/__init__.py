"""Reports: result objects -> plotly figures -> one self-contained offline HTML file."""
