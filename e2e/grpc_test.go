package e2e

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcService answers unary calls with the request's payload, fails on
// demand with a status and a trailer, and echoes bidirectional streams.
type grpcService struct {
	testpb.UnimplementedTestServiceServer
}

func (grpcService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "from-origin"))
	if req.GetResponseStatus().GetCode() != 0 {
		return nil, status.Error(codes.Code(req.GetResponseStatus().GetCode()), req.GetResponseStatus().GetMessage())
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (grpcService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			stream.SetTrailer(metadata.Pairs("x-count", "done"))
			return nil
		}
		if err != nil {
			return err
		}
		body := append([]byte("echo:"), req.GetPayload().GetBody()...)
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
}

func TestGRPCUnaryAndBidiStreamingThroughTheProxy(t *testing.T) {
	l := listen(t)
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, grpcService{})
	go gs.Serve(l)
	defer gs.Stop()
	e := startEdge(t, `
upstreams:
  grpc:
    servers: [{addr: "{{ORIGIN}}"}]
    protocol: h2c
routes:
  - name: grpc
    upstream: grpc
`, "{{ORIGIN}}", l.Addr().String())

	cc, err := grpc.NewClient(strings.TrimPrefix(e.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testpb.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var trailer metadata.MD
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatalf("unary: %v", err)
	}
	if string(resp.GetPayload().GetBody()) != "ping" || trailer.Get("x-trailer")[0] != "from-origin" {
		t.Fatalf("unary: body %q trailer %v", resp.GetPayload().GetBody(), trailer)
	}

	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such package"}})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such package" {
		t.Fatalf("status through the proxy: %v", err)
	}

	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		msg := strings.Repeat("m", i+1)
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatal(err)
		}
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if string(got.GetPayload().GetBody()) != "echo:"+msg {
			t.Fatalf("stream message %d: %q", i, got.GetPayload().GetBody())
		}
	}
	stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v", err)
	}
	if got := stream.Trailer().Get("x-count"); len(got) != 1 || got[0] != "done" {
		t.Fatalf("stream trailer %v", stream.Trailer())
	}
}
