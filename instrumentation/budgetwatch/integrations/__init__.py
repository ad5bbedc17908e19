"""Integrations of budgetwatch with LLM client libraries.

Each integration lives in its own module and imports its library only when that module is
imported, so `import budgetwatch` works without any of them installed:

- `budgetwatch.integrations.litellm`: `BudgetwatchLogger`, a LiteLLM callback
  (`pip install 'budgetwatch[litellm]'`).
"""
