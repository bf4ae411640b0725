// Command hostpath-csi is the CSI driver of the test cluster that scripts/cluster starts: a volume is a directory
// under --state, a snapshot is a tar file of that directory, and a group snapshot is one such file per volume,
// cut under one lock.
//
// It exists because the module proxy does not serve Kubernetes' own csi-driver-host-path. It serves the identity,
// controller and group-controller services only: without a kubelet there is no node to publish a volume on, and
// whatever runs a pod's process reads the volume's directory directly.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
)

// version is set at build time by scripts/cluster (-ldflags -X main.version=...).
var version = "dev"

func main() {
	endpoint := flag.String("endpoint", "", "unix socket to serve CSI on (path or unix:///path)")
	stateDir := flag.String("state", "", "directory that holds volumes/, snapshots/ and state.json")
	driverName := flag.String("driver-name", "hostpath.csi.backup-ns.local", "CSI driver name reported to the sidecars")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	if *endpoint == "" || *stateDir == "" {
		fmt.Fprintln(os.Stderr, "hostpath-csi: --endpoint and --state are required")
		os.Exit(2)
	}
	if err := run(strings.TrimPrefix(*endpoint, "unix://"), *stateDir, *driverName); err != nil {
		fmt.Fprintf(os.Stderr, "hostpath-csi: %v\n", err)
		os.Exit(1)
	}
}

func run(socket, stateDir, driverName string) error {
	st, err := openStore(stateDir)
	if err != nil {
		return err
	}
	// A socket left by a killed predecessor would make Listen fail with "address already in use".
	if err := os.Remove(socket); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing stale socket %s: %w", socket, err)
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return err
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", socket, err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(srv, &identity{name: driverName})
	csi.RegisterControllerServer(srv, &controller{store: st})
	csi.RegisterGroupControllerServer(srv, &groupController{store: st})

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		srv.GracefulStop()
	}()
	log.Printf("hostpath-csi %s serving %s on %s, state in %s", version, driverName, socket, stateDir)
	return srv.Serve(lis)
}

// logCalls writes one line per RPC so that DIR/logs/ shows what the sidecars asked for and what failed.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		log.Printf("%s: error: %v", info.FullMethod, err)
	} else {
		log.Printf("%s: ok", info.FullMethod)
	}
	return resp, err
}

type identity struct {
	csi.UnimplementedIdentityServer
	name string
}

func (i *identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: i.name, VendorVersion: version}, nil
}

func (i *identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	// No VOLUME_ACCESSIBILITY_CONSTRAINTS: there are no CSINode objects to take topology from.
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		pluginService(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		pluginService(csi.PluginCapability_Service_GROUP_CONTROLLER_SERVICE),
	}}, nil
}

func pluginService(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
	return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
}

func (i *identity) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}
