"""nighttune's Prefect flows and the `nighttune` command line."""

from nighttune.flows import quiet

quiet.install()  # TensorFlow's import-time lines off the screen, here and on workers
