"""Results: KPIs, the transfer matrix, confidence intervals, figures and the campaign report.

`kpis` defines every KPI once, `evaluator` builds the transfer matrix, `statistics` the
intervals, `plots` the figures, and `report` with `report_blocks` the campaign report.
"""
