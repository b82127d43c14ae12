// kstatus: reads Kubernetes objects (a JSON list) on stdin and prints, for each, the
// status that sigs.k8s.io/cli-utils/pkg/kstatus computes: what Flux and kubectl wait use.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: stdin must be a JSON list of objects:", err)
		os.Exit(2)
	}
	out := []map[string]string{}
	for _, raw := range objects {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil { // integers stay int64, as kstatus needs
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(2)
		}
		res, err := status.Compute(obj)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		out = append(out, map[string]string{"status": res.Status.String(), "message": res.Message})
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
