//go:build !linux

package sqlite

import "runtime"

// fileSystemOf knows file-system types only on Linux, the loader's platform;
// elsewhere auto stays exclusive, which is safe everywhere.
func fileSystemOf(string) fileSystem {
	return fileSystem{name: "on " + runtime.GOOS}
}
