package vfs

import "golang.org/x/sys/unix"

// Filesystem magic numbers that x/sys/unix does not name.
const (
	tracefsMagic   = 0x74726163
	configfsMagic  = 0x62656570
	mqueueMagic    = 0x19800202
	fusectlMagic   = 0x65735543
	usbdeviceMagic = 0x9fa2
	xenfsMagic     = 0xabba1974
)

// pseudoFilesystems are the host filesystems whose files are views of the
// host kernel (processes, devices, tunables, namespaces, control files)
// rather than stored data. The sandbox never looks anything up on one,
// wherever it is mounted: a lookup that ends on one fails with EACCES (see
// refuseHost). Decided by the f_type fstatfs reports on the looked-up
// descriptor, never by path.
var pseudoFilesystems = map[int64]string{
	unix.PROC_SUPER_MAGIC:     "proc",
	unix.SYSFS_MAGIC:          "sysfs",
	unix.DEBUGFS_MAGIC:        "debugfs",
	tracefsMagic:              "tracefs",
	unix.SECURITYFS_MAGIC:     "securityfs",
	unix.CGROUP_SUPER_MAGIC:   "cgroup",
	unix.CGROUP2_SUPER_MAGIC:  "cgroup2",
	configfsMagic:             "configfs",
	unix.BPF_FS_MAGIC:         "bpf",
	unix.DEVPTS_SUPER_MAGIC:   "devpts",
	mqueueMagic:               "mqueue",
	unix.PSTOREFS_MAGIC:       "pstore",
	unix.EFIVARFS_MAGIC:       "efivarfs",
	fusectlMagic:              "fusectl",
	unix.HUGETLBFS_MAGIC:      "hugetlbfs",
	unix.BINFMTFS_MAGIC:       "binfmt_misc",
	unix.SELINUX_MAGIC:        "selinuxfs",
	unix.SMACK_MAGIC:          "smackfs",
	unix.NSFS_MAGIC:           "nsfs",
	unix.AUTOFS_SUPER_MAGIC:   "autofs",
	unix.RDTGROUP_SUPER_MAGIC: "resctrl",
	unix.BINDERFS_SUPER_MAGIC: "binderfs",
	unix.OPENPROM_SUPER_MAGIC: "openpromfs",
	usbdeviceMagic:            "usbdevfs",
	xenfsMagic:                "xenfs",
	unix.PIPEFS_MAGIC:         "pipefs",
	unix.SOCKFS_MAGIC:         "sockfs",
	unix.ANON_INODE_FS_MAGIC:  "anon_inodefs",
	unix.PID_FS_MAGIC:         "pidfs",
	unix.SECRETMEM_MAGIC:      "secretmem",
	unix.DEVMEM_MAGIC:         "devmem",
	unix.DMA_BUF_MAGIC:        "dmabuf",
}

// refuseHost checks a descriptor that a lookup under the root produced
// (O_PATH: opening it had no effect on the host). It returns EACCES if the
// file is on a host pseudo filesystem, and nil otherwise. Host FIFOs,
// sockets and devices on ordinary filesystems may be looked up (stat, a
// directory listing) but never opened: see openable.
func refuseHost(fd int) error {
	var sfs unix.Statfs_t
	for {
		err := unix.Fstatfs(fd, &sfs)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return unix.EACCES
		}
	}
	if _, ok := pseudoFilesystems[sfs.Type]; ok {
		return unix.EACCES
	}
	return nil
}

// openable reports whether the sentry may open a host file of this type
// for reading: regular files and directories only. A FIFO's open blocks
// until a writer comes, a device's open and reads reach a host driver, a
// socket file leads to a host service.
func openable(fileType uint32) bool {
	return fileType == unix.S_IFREG || fileType == unix.S_IFDIR
}
