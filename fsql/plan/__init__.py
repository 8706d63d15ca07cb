"""The plan layer: ``SELECT FEATURES`` planned into point-in-time join SQL
(:mod:`~fsql.plan.features`, its Trino window form :mod:`~fsql.plan.window`,
the Python form :mod:`~fsql.plan.get_features`) and plain queries run over
bound relations (:mod:`~fsql.plan.plain`)."""
