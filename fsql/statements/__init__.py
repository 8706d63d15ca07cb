"""The statements layer: statement text is parsed and each statement handed
to its executor (:mod:`~fsql.statements.run`, :mod:`~fsql.statements.registry`),
one module per statement family."""
