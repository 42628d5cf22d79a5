"""The cluster's status as data, a pure function of a ClusterView: the document
``ha status -o json`` prints, and the words ``ha status`` and the agents' web status page
share. Below the CLI so that the node agent may build it too (docs/architecture.md)."""
