package s3

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Credential sources.
const (
	SourceChain     = "chain"     // the AWS SDK's default chain: environment, shared files, web identity, ECS, EC2 instance metadata
	SourceEnv       = "env"       // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN only
	SourceFile      = "file"      // a shared credentials file (INI, as ~/.aws/credentials) only
	SourceAnonymous = "anonymous" // unsigned requests, for a public bucket
)

// Credentials returns the provider for a source; file and profile are
// used by SourceFile (profile "" is "default"). A file or environment
// without keys is an error now, not at the first request. The values read
// are kept in memory only; errors name the source, never a key.
func Credentials(ctx context.Context, source, file, profile string) (aws.CredentialsProvider, error) {
	switch source {
	case SourceAnonymous:
		return nil, nil
	case SourceEnv:
		env, err := awsconfig.NewEnvConfig()
		if err != nil {
			return nil, fmt.Errorf("credentials from the environment: %w", err)
		}
		return static(env.Credentials, "the environment has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case SourceFile:
		if profile == "" {
			profile = "default"
		}
		sc, err := awsconfig.LoadSharedConfigProfile(ctx, profile, func(o *awsconfig.LoadSharedConfigOptions) {
			o.CredentialsFiles = []string{file}
			o.ConfigFiles = []string{}
		})
		if err != nil {
			// The SDK's reason may quote a line of the file: it is left out.
			return nil, fmt.Errorf("credentials file %s: cannot be read, or has no profile %s", file, profile)
		}
		return static(sc.Credentials, fmt.Sprintf("credentials file %s, profile %s: no aws_access_key_id and aws_secret_access_key", file, profile))
	case SourceChain, "":
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("AWS default credential chain: %w", err)
		}
		return cfg.Credentials, nil
	}
	return nil, fmt.Errorf("unknown credential source %q", source)
}

func static(c aws.Credentials, missing string) (aws.CredentialsProvider, error) {
	if !c.HasKeys() {
		return nil, errors.New(missing)
	}
	return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken), nil
}
