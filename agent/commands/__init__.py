"""The ``medagent`` subcommands, one module each: the composition roots.

Each module provides ``add_arguments(parser)`` and ``run(args) -> int`` (an exit code), and is named
in ``agent.cli.COMMANDS``. A command parses its options, loads the configuration
(``_config.config_for_command``), builds what it needs from the layers below (``runtime``,
``engines``, ``adapters``, ``pbxsim``), prints, and chooses the exit code. Nothing in ``agent``
imports a command; the library parts a command uses live with their layer.
"""
