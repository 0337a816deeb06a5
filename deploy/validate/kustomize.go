package main

import (
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// checkKustomize renders deploy/k8s with kustomize's own library, exactly what
// `kubectl apply -k deploy/k8s` does before sending the objects.
func checkKustomize(r *report, root string) {
	r.start("kustomize")
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, "deploy/k8s"))
	if err != nil {
		r.errorf("kustomize build deploy/k8s: %v", err)
		return
	}
	r.ok("kustomize build deploy/k8s renders %d objects", res.Size())
	for _, o := range res.Resources() {
		r.check(o.GetLabels()["app.kubernetes.io/part-of"] == "kafka-pipeline", "%s %s carries app.kubernetes.io/part-of", o.GetKind(), o.GetName())
		r.check(o.GetNamespace() == "", "%s %s rendered without a namespace", o.GetKind(), o.GetName())
	}
}
