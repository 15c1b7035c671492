package deploy_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	stdlog "log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/reservist/reservist/internal/testkit"
)

// imageUser is the Dockerfile's USER: distroless's nonroot.
const imageUser = 65532

// TestImageNeedsNoHostFiles runs the binary as the image runs it — static, as user 65532, with
// nothing else in its root file system but the rules and a state directory — so that the
// image is known to work without Docker. It proves the binary needs no file of the host:
//   - no /etc/passwd or /etc/group: it runs under a bare numeric uid;
//   - no CA certificates: its REST call over TLS goes to a server whose certificate names a
//     public root CA as issuer but is signed by another key. With roots of its own the binary
//     finds that root and says the signature does not verify with it; with none it could only
//     say that the issuer is unknown.
//
// It needs root (for chroot and setuid), so elsewhere it is skipped.
func TestImageNeedsNoHostFiles(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to chroot and change user, as the container runtime does")
	}
	bin := reservistBinary(t)
	rootfs := t.TempDir()
	if err := os.Chmod(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"etc/reservist", "var/lib/reservist"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(rootfs, "var/lib/reservist"), imageUser, imageUser); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "reservist"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	// One rule that goes by REST, so that a callback makes a TLS call.
	rules := "version: 1\nrules:\n  - name: by-rest\n    when: true\n    do: accept\n    via: rest\n"
	if err := os.WriteFile(filepath.Join(rootfs, "etc/reservist/rules.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	tlsServer, rootName := publicRootServer(t)
	defer tlsServer.Close()

	listen := testkit.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/reservist", "serve", "--listen", listen, "--admin-listen", "off",
		"--twilio-base-url", tlsServer.URL)
	cmd.Dir = "/"
	cmd.Env = []string{ // only what the image's ENV and the pod's Secret would give it
		"RESERVIST_RULES=/etc/reservist/rules.yaml",
		"RESERVIST_STATE_DIR=/var/lib/reservist",
		"TWILIO_ACCOUNT_SID=AC00000000000000000000000000000001",
		"TWILIO_AUTH_TOKEN=0123456789abcdef0123456789abcdef",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     rootfs,
		Credential: &syscall.Credential{Uid: imageUser, Gid: imageUser},
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the binary in an empty root: %v", err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log strings.Builder
	ready := false
	deadline := time.Now().Add(30 * time.Second)
	for !ready && time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !ready {
		cmd.Process.Kill()
		for l := range lines {
			log.WriteString(l + "\n")
		}
		t.Fatalf("not ready in an empty root as user %d:\n%s", imageUser, log.String())
	}

	params := testkit.Callback(1, `{}`)
	status, body := testkit.Post(t, "http://"+listen+"/assignment_callback", "0123456789abcdef0123456789abcdef", params)
	if status != 200 || body != "{}" {
		t.Fatalf("callback = %d %s; want 200 {}", status, body)
	}

	// The REST call fails on the certificate; which words it fails with say whether the
	// binary had roots to check the chain against.
	var tlsLine string
	for tlsLine == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the binary exited:\n%s", log.String())
			}
			log.WriteString(l + "\n")
			if strings.Contains(l, "x509") {
				tlsLine = l
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no REST attempt was logged:\n%s", log.String())
		}
	}
	var rec struct{ Error string }
	if err := json.Unmarshal([]byte(tlsLine), &rec); err != nil {
		t.Fatalf("log line %q: %v", tlsLine, err)
	}
	if want := "while trying to verify candidate authority certificate " + strconv.Quote(rootName); !strings.Contains(rec.Error, want) {
		t.Errorf("the REST call over TLS failed with %q; want it to have found the public root %q among roots the binary carries", rec.Error, rootName)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for l := range lines {
			_ = l
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM the binary exited with %v; want 0", err)
	}
}

// publicRootServer is a TLS server whose certificate, valid for 127.0.0.1, names a public
// root CA (Mozilla's, as golang.org/x/crypto/x509roots carries it) as its issuer but is
// signed by a key of the test's own. A client that has that root finds it as the candidate
// issuer and refuses the signature, saying so; a client without roots finds no candidate.
func publicRootServer(t *testing.T) (srv *httptest.Server, rootName string) {
	t.Helper()
	var root *x509.Certificate
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err == nil && r.Constraint == nil && time.Now().Before(c.NotAfter) && len(c.SubjectKeyId) > 0 {
			root = c
			break
		}
	}
	if root == nil {
		t.Fatal("no usable root in the bundle")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuer := &x509.Certificate{RawSubject: root.RawSubject, SubjectKeyId: root.SubjectKeyId, PublicKey: key.Public()}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "reservist test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, issuer, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the handshakes are meant to fail
	srv.StartTLS()
	return srv, root.Subject.CommonName
}
