"""A local Airflow 3.3 deployment for the project's DAGs, run without importing Airflow.

- :mod:`soilclay.stack.config`: what the deployment is (:class:`StackSpec`) and its environment;
- :mod:`soilclay.stack.processes`: prepare (metadata DB, migrations, pools), start, stop the four processes
  (and, with them, the monitoring components);
- :mod:`soilclay.stack.monitoring`: start, check, stop soilclay's metrics exporter and Prometheus (alone too);
- :mod:`soilclay.stack.procgroup`: detached process groups, pid files, logs, stopping a group and its children;
- :mod:`soilclay.stack.rest`: a small client of Airflow's REST API v2 (trigger, wait for asset-driven chains);
- :mod:`soilclay.stack.chain`: the pure decision "is the chain done, still running, failed?".

Library code must never ``import airflow``: it runs the ``airflow`` executable and talks HTTP.
"""
