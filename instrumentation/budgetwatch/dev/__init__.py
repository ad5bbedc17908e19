"""Developer tooling shared by the tests and the scripts (never imported by the runtime):
the dev stack of real servers (stack.py) and panel queries as Grafana sends them
(panel_queries.py)."""
