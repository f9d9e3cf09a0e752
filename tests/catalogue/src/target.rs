//! What a runner needs from the system under test.

use alloc::string::String;
use alloc::vec::Vec;

use crate::case::Need;

/// Where a target lets cases work. Cases only touch HLOS memory inside the scratch area
/// and put guest mappings inside the guest window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// HLOS RAM (IPA = PA) the cases may lend, share, donate, seal and write: 2 MiB
    /// aligned, at least [`crate::SCRATCH_SIZE`] bytes, nothing else of the target's in it.
    pub scratch: u64,
    /// One past the end of HLOS RAM (an IPA HLOS does not own).
    pub hlos_ram_end: u64,
    /// An IPA range of [`crate::GUEST_WINDOW_SIZE`] bytes, 2 MiB aligned, that the RM
    /// leaves free in every VM the cases create (cases map golden images and bind gmem
    /// there).
    pub guest_window: u64,
    /// The highest static VMID VM_ALLOC_VMID hands out (the lowest is 4); 31 on Gunyah's
    /// QEMU platform (§12.1).
    pub static_vmid_last: u16,
}

/// What a guest access did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// It completed: a read's bytes (empty for a write).
    Done(Vec<u8>),
    /// The page at this IPA (page aligned) faulted and the RM did not serve the fault.
    Fault(u64),
}

/// The layout of an image [`Target::stage_image`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image {
    /// Bytes to lend as the image parcel (page multiple, at most [`crate::IMAGE_ROOM`]).
    pub size: u64,
    /// Image bytes at offset 0 (0 if there is no separate image).
    pub image_size: u64,
    /// Offset of the DT in the parcel.
    pub dtb_offset: u64,
    /// Size of the DT.
    pub dtb_size: u64,
}

/// Whether anything could send to the RM as a VM ([`Target::sender`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    /// A vCPU of it runs (something executes as it).
    pub runs: bool,
    /// The RM holds a message-queue link for it (what it sends would reach the RM).
    pub link: bool,
}

/// A target could not do what it was asked (not a wrong answer from the RM: the case
/// fails with this text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError(pub String);

/// The system under test, as a runner drives it.
///
/// Every method acts at once and completely: when `send` returns, the RM has handled the
/// packet and everything it caused (replies, notifications, asynchronous reset stages) is
/// queued, so `recv` returning `None` means nothing more is coming for that VM.
pub trait Target {
    /// A short name for the report.
    fn name(&self) -> &str;

    /// Where cases may work.
    fn params(&self) -> Params;

    /// Whether the target has a facility (the host simulator has them all).
    fn has(&self, need: Need) -> bool;

    /// Send one message-queue packet (at most 240 bytes) to the RM as VM `from`.
    fn send(&mut self, from: u16, packet: &[u8]) -> Result<(), TargetError>;

    /// The next packet the RM queued for VM `to`, or `None` if there is none.
    fn recv(&mut self, to: u16) -> Result<Option<Vec<u8>>, TargetError>;

    /// VM `vm`'s vCPU reads `len` bytes at `ipa` (stage-2 faults take the RM's fault path:
    /// CoW, demand paging, or not served). Notifications the access causes (COW_BROKEN,
    /// QUOTA_EXHAUSTED, FAULT_UNSERVED) are queued by the time it returns.
    fn read(&mut self, vm: u16, ipa: u64, len: usize) -> Result<Access, TargetError>;

    /// VM `vm`'s vCPU writes `data` at `ipa`; as [`Target::read`].
    fn write(&mut self, vm: u16, ipa: u64, data: &[u8]) -> Result<Access, TargetError>;

    /// Write a bootable image for VM `vm` into HLOS memory at `ipa` (inside the scratch
    /// area, [`crate::IMAGE_ROOM`] bytes available): a DT with one vCPU, and whatever the
    /// target runs in its guests.
    fn stage_image(&mut self, vm: u16, ipa: u64) -> Result<Image, TargetError>;

    /// A digest of the RM's whole state (records, stage-2 tables, partition), if the target
    /// can take one; equal digests mean nothing changed.
    fn digest(&mut self) -> Option<u64>;

    /// Resource counts (VMs, parcels, pages in use, ...) compared before a case and after
    /// its clean-up, if the target can count them.
    fn census(&mut self) -> Option<Vec<(&'static str, u64)>>;

    /// The target's own invariant check, run after every step (the host runs the RM's
    /// isolation checker). `Err` fails the case.
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Make `vm` protected: it accepts only golden images with one of these digests
    /// ([`Need::Protect`]).
    fn protect(&mut self, vm: u16, digests: &[[u8; 32]]) -> Result<(), TargetError> {
        let _ = (vm, digests);
        Err(TargetError(String::from("protect is not supported")))
    }

    /// Whether `vm` could send to the RM: a vCPU of it runs, the RM holds its link. `None`
    /// if the target cannot tell.
    fn sender(&mut self, vm: u16) -> Option<Sender> {
        let _ = vm;
        None
    }

    /// Start again from a clean RM (after a case failed and its clean-up did not bring the
    /// census back). `false` if the target cannot.
    fn fresh(&mut self) -> bool {
        false
    }
}
