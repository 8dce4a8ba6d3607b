//go:build tools

// Package tools pins the Kubernetes commands the tests run (kube-apiserver, kube-scheduler,
// kube-controller-manager, kubelet) so that `go build` resolves them from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
