package kafka

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func TestInputSASL(t *testing.T) {
	ctx := testContext(t)
	addr := testCluster(t,
		kfake.SeedTopics(1, "metrics"),
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "scram-user", "scram-pass"),
		kfake.Superuser("PLAIN", "plain-user", "plain-pass"),
	)
	produce(t, ctx, addr, "metrics", 1, 0, 3,
		kgo.SASL(scram.Auth{User: "scram-user", Pass: "scram-pass"}.AsSha256Mechanism()))

	for _, tc := range []struct{ mechanism, user, pass string }{
		{"SCRAM-SHA-256", "scram-user", "scram-pass"},
		{"PLAIN", "plain-user", "plain-pass"},
	} {
		t.Run(tc.mechanism, func(t *testing.T) {
			in, _ := newTestInput(t, ctx, addr, fmt.Sprintf(
				"topics: [ metrics ]\nconsumer_group: %s\nsasl:\n  - mechanism: %s\n    username: %s\n    password: %s\n",
				tc.mechanism, tc.mechanism, tc.user, tc.pass))
			ch, _ := startReader(t, in)
			readRecords(t, ch, 3)
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		conf, err := inputSpec().ParseYAML(fmt.Sprintf(
			"seed_brokers: [ %q ]\ntopics: [ metrics ]\nconsumer_group: g\nsasl:\n  - mechanism: SCRAM-SHA-256\n    username: scram-user\n    password: wrong\n", addr), nil)
		if err != nil {
			t.Fatal(err)
		}
		in, err := newInput(conf, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close(ctx)
		if err := in.Connect(ctx); err == nil || !strings.Contains(err.Error(), "reaching the brokers") {
			t.Fatalf("connect error %v, want a failure to reach the brokers", err)
		}
	})
}

func TestInputTLS(t *testing.T) {
	ctx := testContext(t)
	cert, caPEM := selfSignedCert(t)
	addr := testCluster(t, kfake.SeedTopics(1, "metrics"), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	produce(t, ctx, addr, "metrics", 1, 0, 3, kgo.DialTLSConfig(&tls.Config{RootCAs: pool}))

	indented := "      " + strings.ReplaceAll(strings.TrimSpace(string(caPEM)), "\n", "\n      ")
	in, _ := newTestInput(t, ctx, addr, fmt.Sprintf(
		"topics: [ metrics ]\nconsumer_group: g\ntls:\n  enabled: true\n  root_cas: |\n%s\n", indented))
	ch, _ := startReader(t, in)
	readRecords(t, ch, 3)

	t.Run("without tls", func(t *testing.T) {
		conf, err := inputSpec().ParseYAML(fmt.Sprintf("seed_brokers: [ %q ]\ntopics: [ metrics ]\nconsumer_group: g\n", addr), nil)
		if err != nil {
			t.Fatal(err)
		}
		in, err := newInput(conf, service.MockResources())
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close(ctx)
		if err := in.Connect(ctx); err == nil {
			t.Fatal("connected in plain text to a TLS listener")
		}
	})
}

// selfSignedCert returns a certificate for 127.0.0.1 and its PEM, which
// clients trust as their CA.
func selfSignedCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}
