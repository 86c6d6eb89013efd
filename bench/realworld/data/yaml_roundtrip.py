"""Workload: a YAML round trip (load, modify, dump, load again)."""
import yaml

text = """
service:
  name: inventory
  ports: [8080, 8443]
  replicas: 3
  env:
    - {name: MODE, value: production}
    - {name: DEBUG, value: "false"}
  limits: {cpu: 0.5, memory: 256Mi}
"""
data = yaml.safe_load(text)
data["service"]["replicas"] += 1
out = yaml.safe_dump(data, sort_keys=True)
assert yaml.safe_load(out) == data
print(out, end="")
