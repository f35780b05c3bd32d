"""nighttune's library, in layers that import downward only (``make lint`` checks it
with import-linter; see pyproject.toml): core < storage < data < reporting < tuning <
runs < dispatch < preflight / inference. Only `tasks.dispatch` and the run logger
import Prefect; the flows (`flows/`) wrap the rest as tasks."""
