// Package k8s holds minecart's Kubernetes manifests (the *.yaml files of
// this folder: Kafka on Strimzi, ClickHouse with the Altinity operator, the
// services with KEDA) and, in its tests, their checks: kubeconform against
// the schemas vendored in schemas/, and the topics, users and the ledger's
// fencing against the code (pipelines.Topology, infra/kafka/init-acls.sh).
// docs/scale.md explains the sizing. There is no Go code here.
package k8s
