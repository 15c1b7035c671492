// Package deploy holds reservist's container image and Kubernetes manifests: a kustomize base
// (base/, with the sidecar as the Component in components/sidecar), the overlays for the
// embedded and the shared PostgreSQL outbox (overlays/), and the alert rules (prometheus/).
//
// It has no Go code of its own, only tests: they build every kustomization with kustomize's
// Go library, decode the output strictly into the Kubernetes and Prometheus Operator API
// types, check the properties the README's deployment section promises, and run promtool on
// the alert rules.
package deploy
