// etcd for `make cluster-test`: the etcd server release that Kubernetes' own go.mod names,
// built here because the Go module proxy serves its library, not its command.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
