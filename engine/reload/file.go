package reload

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxFileSize is the largest rules file reservist reads (docs/rules.md). A file of 50,000
// rules is under 6 MiB; anything larger is a mistake (a log, a dump, a device), and reading
// it whole would cost its size in memory.
const MaxFileSize = 8 << 20

// ReadFile reads a rules file the one way every command reads one: only a regular file (or
// a symlink to one), of at most MaxFileSize, read through that limit so that a file that
// grows meanwhile cannot take more. A FIFO, device, socket or directory is refused without
// a byte being read, and so is a larger file.
func ReadFile(path string) ([]byte, error) {
	// Stat first, to name what is there (a socket cannot even be opened); the descriptor's
	// own Stat below is what counts, should the path change in between.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	// O_NONBLOCK: opening a FIFO would otherwise wait for a writer, holding whoever reads.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	if fi.Size() > MaxFileSize {
		return nil, tooLarge(path, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, tooLarge(path, int64(len(data)))
	}
	return data, nil
}

func notRegular(path string, m fs.FileMode) error {
	return fmt.Errorf("%s is %s, not a regular file; reservist reads rules only from a regular file or a symlink to one", path, kind(m))
}

func tooLarge(path string, size int64) error {
	return fmt.Errorf("%s is %.1f MiB, over the %d MiB a rules file may be", path, float64(size)/(1<<20), MaxFileSize>>20)
}

// kind names what a file that is not a regular one is, for the message.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}
