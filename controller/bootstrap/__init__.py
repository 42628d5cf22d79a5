"""Creating and growing a cluster: ``ha cluster init|join|leave|members|token``.

Design (kubeadm-like; details in each module):

- ``init`` (first node): makes the cluster CA and this node's certificates
  (controller.bootstrap.pki) and writes /etc/vigil/node.yaml and /etc/vigil/client.yaml. It
  starts nothing: vigil-agent reads node.yaml and calls ``bootstrap_first_member``,
  which starts etcd, puts the Cluster spec given to init into the store, and flips
  node.yaml to initial_cluster_state "existing" (a lost data dir then fails loudly
  instead of founding a second cluster).
- ``token_store``: join tokens ``<id>.<secret>@<ca-sha256>@<host:port>``; etcd holds
  ``/vigil/<cluster>/tokens/<id>`` = sha256 of the secret + expiry, on a lease.
- ``join_server``: served by the agent of a node holding ca.key (``serve_joins``),
  TLS with its etcd server certificate, length-prefixed JSON. ``join_client`` first
  fetches the CA unverified and checks it against the token's fingerprint, then
  reconnects verifying the server with it, and sends token + node name + ports +
  three CSRs (private keys never travel). The server checks the token and that the
  node is in the Cluster spec (its address comes from there), signs the CSRs, runs
  etcd ``member add`` and returns certificates and the initial cluster. The joiner
  writes its files; its agent then starts etcd with state "existing".
- ``leave``: ``member remove`` through the other members; etcd exits by itself (its
  EtcdMember goes to state "removed" and is not restarted); then the data dir is wiped
  and node.yaml marked ``state: left``.

Between ``member add`` and the joiner's etcd starting, the cluster counts the joiner
as down (a 1 -> 2 member cluster has no quorum meanwhile): start the agent promptly.
etcd also refuses membership changes until every member has been connected for 5 s;
EtcdAdmin retries that refusal for up to 12 s.
"""
