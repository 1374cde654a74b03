package kafka

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Connection fields shared by the input, the output and the state store.
// Their names and meanings are those of Connect's redpanda and kafka_franz
// components, so that users' YAML carries over.
const (
	fieldSeedBrokers    = "seed_brokers"
	fieldClientID       = "client_id"
	fieldTLS            = "tls"
	fieldSASL           = "sasl"
	fieldSASLMechanism  = "mechanism"
	fieldSASLUsername   = "username"
	fieldSASLPassword   = "password"
	fieldMetadataMaxAge = "metadata_max_age"
)

// SASL mechanisms. none lets a pipeline take the mechanism from an
// environment variable that is unset where brokers need no authentication.
const (
	saslNone        = "none"
	saslPlain       = "PLAIN"
	saslSCRAMSHA256 = "SCRAM-SHA-256"
	saslSCRAMSHA512 = "SCRAM-SHA-512"
)

// connectionFields returns the fields every component that talks to the
// brokers has.
func connectionFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringListField(fieldSeedBrokers).
			Description("Addresses of brokers to bootstrap from, `host:port`. An entry may hold several, separated by commas.").
			Example([]string{"localhost:9092"}).
			Example([]string{"kafka-0:9092,kafka-1:9092"}),
		service.NewStringField(fieldClientID).
			Description("The client ID the brokers see in their logs and quotas.").
			Default("monasca-connect"),
		service.NewTLSToggledField(fieldTLS),
		service.NewObjectListField(fieldSASL,
			service.NewStringEnumField(fieldSASLMechanism, saslNone, saslPlain, saslSCRAMSHA256, saslSCRAMSHA512).
				Description("The SASL mechanism."),
			service.NewStringField(fieldSASLUsername).
				Description("The user name.").
				Default(""),
			service.NewStringField(fieldSASLPassword).
				Description("The password.").
				Secret().
				Default(""),
		).
			Description("SASL authentication, tried in order. PLAIN sends the password as it is: use it with `tls` only.").
			Optional().
			Advanced(),
		service.NewDurationField(fieldMetadataMaxAge).
			Description("How often the cluster's metadata (brokers, topics, partition counts) is refreshed at most.").
			Default("1m").
			Advanced(),
	}
}

// clientOptions turns the connection fields into franz-go options.
func clientOptions(conf *service.ParsedConfig) ([]kgo.Opt, error) {
	brokers, err := seedBrokers(conf)
	if err != nil {
		return nil, err
	}
	clientID, err := conf.FieldString(fieldClientID)
	if err != nil {
		return nil, err
	}
	maxAge, err := conf.FieldDuration(fieldMetadataMaxAge)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.MetadataMaxAge(maxAge),
		// Refreshes after errors (a topic recreated, a leader moved) go
		// out at once, not after the 5 s default.
		kgo.MetadataMinAge(250 * time.Millisecond),
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return nil, err
	}
	if tlsOn {
		opts = append(opts, kgo.DialTLSConfig(tlsConf))
	}
	if conf.Contains(fieldSASL) {
		mechs, err := saslMechanisms(conf)
		if err != nil {
			return nil, err
		}
		if len(mechs) > 0 {
			opts = append(opts, kgo.SASL(mechs...))
		}
	}
	return opts, nil
}

func seedBrokers(conf *service.ParsedConfig) ([]string, error) {
	list, err := conf.FieldStringList(fieldSeedBrokers)
	if err != nil {
		return nil, err
	}
	var brokers []string
	for _, entry := range list {
		for _, b := range strings.Split(entry, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%s: at least one broker address is needed", fieldSeedBrokers)
	}
	return brokers, nil
}

func saslMechanisms(conf *service.ParsedConfig) ([]sasl.Mechanism, error) {
	entries, err := conf.FieldObjectList(fieldSASL)
	if err != nil {
		return nil, err
	}
	mechs := make([]sasl.Mechanism, 0, len(entries))
	for i, e := range entries {
		name, err := e.FieldString(fieldSASLMechanism)
		if err != nil {
			return nil, err
		}
		user, err := e.FieldString(fieldSASLUsername)
		if err != nil {
			return nil, err
		}
		pass, err := e.FieldString(fieldSASLPassword)
		if err != nil {
			return nil, err
		}
		if name == saslNone {
			continue
		}
		m, err := saslMechanism(name, user, pass)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", fieldSASL, i, err)
		}
		mechs = append(mechs, m)
	}
	return mechs, nil
}

func saslMechanism(name, user, pass string) (sasl.Mechanism, error) {
	switch name {
	case saslPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case saslSCRAMSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case saslSCRAMSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("%s %q is not supported: use %s, %s or %s", fieldSASLMechanism, name, saslPlain, saslSCRAMSHA256, saslSCRAMSHA512)
}

// ping checks that the brokers answer, so that a wrong address or
// credentials fail at start-up with a clear error rather than in a retry
// loop.
func ping(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("reaching the brokers: %w", err)
	}
	return nil
}
