"""Tables, plots, reports and the reproduce / report / compare commands."""
