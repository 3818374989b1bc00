"""Tables, plots, reports and the report / compare commands; nothing here runs a model
(``sam_bench.reproduce`` does)."""
