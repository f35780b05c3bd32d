"""Models, the LR range test and its rules, patience sharing, trials, selection."""
