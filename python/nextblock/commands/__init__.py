"""The ``nextblock`` subcommands, one module each (``nextblock build-jacktrip`` is ``build_jacktrip``).

Every module has the same shape, and holds only the command line: its options, help and the call
into the module that does the work (named in its docstring)::

    build_parser(prog: str = "nextblock X") -> argparse.ArgumentParser
    main(argv: list[str] | None = None, prog: str = "nextblock X") -> int    # the exit status

Parsing imports nothing heavy (no TensorFlow, no model): ``main`` imports the implementation after
the arguments are parsed and checked. :mod:`nextblock.cli` dispatches to them from one table; the
implementation modules' ``python -m`` forms (``python -m nextblock.attach``) call the same
``main`` with their own ``prog``.
"""
