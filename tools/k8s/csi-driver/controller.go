package main

// The CSI controller service: volumes (empty, from a snapshot, or cloned from a volume) and snapshots. Every call
// is idempotent by name, as the sidecars retry after timeouts and restarts.

import (
	"context"
	"errors"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// defaultCapacity is what a claim without a size request gets; the driver does not enforce sizes.
const defaultCapacity = 1 << 30

type controller struct {
	csi.UnimplementedControllerServer
	store *store
}

func (c *controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t},
		}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (c *controller) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := checkName("volume", req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume capabilities are required")
	}
	capacity := req.GetCapacityRange().GetRequiredBytes()
	if capacity == 0 {
		capacity = defaultCapacity
	}
	want := volume{
		CapacityBytes:  capacity,
		SourceSnapshot: req.GetVolumeContentSource().GetSnapshot().GetSnapshotId(),
		SourceVolume:   req.GetVolumeContentSource().GetVolume().GetVolumeId(),
	}
	id := req.GetName()
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if have, ok := s.st.Volumes[id]; ok {
		if *have != want {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s exists with another size or source", id)
		}
		return volumeResponse(id, have, req.GetVolumeContentSource()), nil
	}
	dir := s.volumePath(id)
	// A directory without a state entry is a leftover of a call that failed half-way: start it afresh.
	if err := os.RemoveAll(dir); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.Mkdir(dir, 0o777); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// Mkdir's mode passes through the umask; pods of any user must be able to write their volume.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := c.fill(dir, &want); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.st.Volumes[id] = &want
	if err := s.save(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return volumeResponse(id, &want, req.GetVolumeContentSource()), nil
}

// fill copies a new volume's content from its snapshot or volume source; the caller holds the store's lock.
func (c *controller) fill(dir string, v *volume) error {
	s := c.store
	switch {
	case v.SourceSnapshot != "":
		if _, ok := s.st.Snapshots[v.SourceSnapshot]; !ok {
			return status.Errorf(codes.NotFound, "snapshot %s not found", v.SourceSnapshot)
		}
		f, err := os.Open(s.snapshotPath(v.SourceSnapshot))
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		defer f.Close()
		if err := unpackTree(f, dir); err != nil {
			return status.Errorf(codes.Internal, "restoring snapshot %s: %v", v.SourceSnapshot, err)
		}
	case v.SourceVolume != "":
		if _, ok := s.st.Volumes[v.SourceVolume]; !ok {
			return status.Errorf(codes.NotFound, "volume %s not found", v.SourceVolume)
		}
		if err := copyTree(s.volumePath(v.SourceVolume), dir); err != nil {
			return status.Errorf(codes.Internal, "cloning volume %s: %v", v.SourceVolume, err)
		}
	}
	return nil
}

func volumeResponse(id string, v *volume, source *csi.VolumeContentSource) *csi.CreateVolumeResponse {
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      id,
		CapacityBytes: v.CapacityBytes,
		ContentSource: source,
	}}
}

func (c *controller) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	id := req.GetVolumeId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "volume id is required")
	}
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Volumes[id]; !ok {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if err := os.RemoveAll(s.volumePath(id)); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	delete(s.st.Volumes, id)
	if err := s.save(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (c *controller) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	s := c.store
	s.mu.Lock()
	_, ok := s.st.Volumes[req.GetVolumeId()]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	// A directory serves every access mode on a single host.
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities(),
	}}, nil
}

func (c *controller) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if err := checkName("snapshot", req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, err := s.cutSnapshot(req.GetName(), req.GetSourceVolumeId(), "")
	if err != nil {
		return nil, err
	}
	return &csi.CreateSnapshotResponse{Snapshot: snapshotMessage(req.GetName(), snap)}, nil
}

// cutSnapshot tars a volume into a new snapshot, or returns the existing snapshot of that name if it has the same
// source. The caller holds mu and saves the state.
func (s *store) cutSnapshot(id, sourceVolume, groupID string) (*snapshot, error) {
	if have, ok := s.st.Snapshots[id]; ok {
		if have.SourceVolume != sourceVolume {
			return nil, status.Errorf(codes.AlreadyExists, "snapshot %s exists for volume %s", id, have.SourceVolume)
		}
		return have, nil
	}
	if _, ok := s.st.Volumes[sourceVolume]; !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q not found", sourceVolume)
	}
	size, err := writeTar(s.volumePath(sourceVolume), s.snapshotPath(id))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "snapshot of %s: %v", sourceVolume, err)
	}
	snap := &snapshot{SourceVolume: sourceVolume, SizeBytes: size, Created: time.Now().UTC(), Group: groupID}
	s.st.Snapshots[id] = snap
	if err := s.save(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return snap, nil
}

func snapshotMessage(id string, snap *snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:      id,
		SourceVolumeId:  snap.SourceVolume,
		SizeBytes:       snap.SizeBytes,
		CreationTime:    timestamppb.New(snap.Created),
		ReadyToUse:      true,
		GroupSnapshotId: snap.Group,
	}
}

func (c *controller) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot id is required")
	}
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.dropSnapshot(req.GetSnapshotId()); err != nil {
		return nil, err
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// dropSnapshot removes a snapshot's file and entry; a missing one is already gone, as CSI's idempotency wants.
// The caller holds mu.
func (s *store) dropSnapshot(id string) error {
	if _, ok := s.st.Snapshots[id]; !ok {
		return nil
	}
	if err := os.Remove(s.snapshotPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return status.Error(codes.Internal, err.Error())
	}
	delete(s.st.Snapshots, id)
	if err := s.save(); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

func (c *controller) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	s := c.store
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, snap := range s.st.Snapshots {
		if req.GetSnapshotId() != "" && id != req.GetSnapshotId() {
			continue
		}
		if req.GetSourceVolumeId() != "" && snap.SourceVolume != req.GetSourceVolumeId() {
			continue
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	start := 0
	if tok := req.GetStartingToken(); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(ids) {
			return nil, status.Errorf(codes.Aborted, "starting token %q is not valid", tok)
		}
		start = n
	}
	end := len(ids)
	if max := int(req.GetMaxEntries()); max > 0 && start+max < end {
		end = start + max
	}
	resp := &csi.ListSnapshotsResponse{}
	for _, id := range ids[start:end] {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: snapshotMessage(id, s.st.Snapshots[id])})
	}
	if end < len(ids) {
		resp.NextToken = strconv.Itoa(end)
	}
	return resp, nil
}
