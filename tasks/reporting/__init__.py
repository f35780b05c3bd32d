"""Tables, figures and report.html of a run."""
