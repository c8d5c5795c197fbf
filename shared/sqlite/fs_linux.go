package sqlite

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// fsTypes are statfs f_type magic numbers (linux/magic.h and the file
// systems' own sources). Only types listed as local get WAL; anything
// unlisted is treated as networked, the safe side.
var fsTypes = map[int64]struct {
	name    string
	network bool
}{
	0xEF53:     {"ext4", false},
	0x58465342: {"xfs", false},
	0x9123683E: {"btrfs", false},
	0x01021994: {"tmpfs", false},
	0x858458F6: {"ramfs", false},
	0x794C7630: {"overlayfs", false},
	0x2FC12FC1: {"zfs", false},
	0xF2F52010: {"f2fs", false},
	0x3153464A: {"jfs", false},
	0x52654973: {"reiserfs", false},
	0xCA451A4E: {"bcachefs", false},
	0x4D44:     {"vfat", false},
	0x2011BAB0: {"exfat", false},
	0x7366746E: {"ntfs3", false},
	0x3434:     {"nilfs2", false},

	0x6969:     {"nfs", true}, // EFS is NFSv4.1
	0x517B:     {"smb", true},
	0xFE534D42: {"smb2", true},
	0xFF534D42: {"cifs", true},
	0x65735546: {"fuse", true}, // also virtiofs, sshfs, Docker Desktop's file sharing
	0x01021997: {"9p", true},   // WSL 2's /mnt/c, some VMs' shared folders
	0x00C36400: {"ceph", true},
	0x6B414653: {"afs", true},
	0x5346414F: {"openafs", true},
	0x73757245: {"coda", true},
	0x564C:     {"ncp", true},
	0x0BD00BD0: {"lustre", true},
	0x47504653: {"gpfs", true},
	0x01161970: {"gfs2", true},
	0x7461636F: {"ocfs2", true},
}

func fileSystemOf(dir string) fileSystem {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fileSystem{err: fmt.Errorf("statfs %s: %w", dir, err)}
	}
	magic := int64(uint32(st.Type))
	t, ok := fsTypes[magic]
	if !ok {
		return fileSystem{name: fmt.Sprintf("type 0x%X", magic)}
	}
	return fileSystem{name: t.name, known: true, network: t.network}
}
