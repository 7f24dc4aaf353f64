"""``testbed bench``: the project measured side by side with the libraries it stands on.

One module per benchmark (`env_overhead`, `policy_link`, `campaign`, `replay_speed`, `memory`), each
returning `figures.Figure` records with the reference they were compared with in the same run;
`suite.run_bench` runs the chosen sections and `output` prints and saves them. Figures are
ratios measured side by side, because absolute times on a shared machine mean little. See
docs/benchmarks.md.
"""
