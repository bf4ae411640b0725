package main

// The CSI group-controller service: a VolumeGroupSnapshot is one snapshot per source volume, all cut while the
// store's lock is held, so no other call of this driver lands between them.

import (
	"context"
	"slices"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type groupController struct {
	csi.UnimplementedGroupControllerServer
	store *store
}

func (g *groupController) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}, nil
}

func (g *groupController) CreateVolumeGroupSnapshot(_ context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	id := req.GetName()
	if err := checkName("group snapshot", id); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.GetSourceVolumeIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "source volume ids are required")
	}
	sources := slices.Sorted(slices.Values(req.GetSourceVolumeIds()))
	s := g.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if have, ok := s.st.Groups[id]; ok {
		if !slices.Equal(have.SourceVolumes, sources) {
			return nil, status.Errorf(codes.AlreadyExists, "group snapshot %s exists for other volumes", id)
		}
		return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: s.groupMessage(id, have)}, nil
	}
	grp := &group{SourceVolumes: sources, Created: time.Now().UTC()}
	for _, vol := range sources {
		snapID := id + "-" + vol
		if _, err := s.cutSnapshot(snapID, vol, id); err != nil {
			// Leave no half group behind: a retry starts from nothing.
			for _, done := range grp.Snapshots {
				s.dropSnapshot(done)
			}
			return nil, err
		}
		grp.Snapshots = append(grp.Snapshots, snapID)
	}
	s.st.Groups[id] = grp
	if err := s.save(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: s.groupMessage(id, grp)}, nil
}

// groupMessage renders a group and its member snapshots; the caller holds mu.
func (s *store) groupMessage(id string, grp *group) *csi.VolumeGroupSnapshot {
	msg := &csi.VolumeGroupSnapshot{GroupSnapshotId: id, CreationTime: timestamppb.New(grp.Created), ReadyToUse: true}
	for _, snapID := range grp.Snapshots {
		if snap, ok := s.st.Snapshots[snapID]; ok {
			msg.Snapshots = append(msg.Snapshots, snapshotMessage(snapID, snap))
		}
	}
	return msg
}

func (g *groupController) DeleteVolumeGroupSnapshot(_ context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	id := req.GetGroupSnapshotId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "group snapshot id is required")
	}
	s := g.store
	s.mu.Lock()
	defer s.mu.Unlock()
	members := req.GetSnapshotIds()
	if grp, ok := s.st.Groups[id]; ok {
		members = append(members, grp.Snapshots...)
	}
	for _, snapID := range members {
		if err := s.dropSnapshot(snapID); err != nil {
			return nil, err
		}
	}
	delete(s.st.Groups, id)
	if err := s.save(); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}

func (g *groupController) GetVolumeGroupSnapshot(_ context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	s := g.store
	s.mu.Lock()
	defer s.mu.Unlock()
	grp, ok := s.st.Groups[req.GetGroupSnapshotId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "group snapshot %s not found", req.GetGroupSnapshotId())
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: s.groupMessage(req.GetGroupSnapshotId(), grp)}, nil
}
