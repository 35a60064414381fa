"""Monitoring: soilclay's Prometheus exporter, the names it exports, Prometheus and Grafana configuration."""
