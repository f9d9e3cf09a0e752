//! Every known notification as one enum, decoded by message ID.

use crate::error::RmError;
use crate::ext::{CowBroken, FaultUnserved, QuotaExhausted};
use crate::fragment::Fragmenter;
use crate::mem::{MemOwnerNotif, MemRecall, MemShared};
use crate::msg_id::MsgId;
use crate::request::message_enum;
use crate::vm::{ConsoleChars, VmExited, VmIrqLentNotif, VmStatusNotif, Word};
use crate::wire::{DecodeError, Encode, EncodeError, Writer};

message_enum! {
    /// A decoded notification payload.
    pub enum Notification<'a> {
        /// MEM_SHARED.
        MemShared(MemShared<'a>) = MEM_SHARED,
        /// MEM_RELEASED.
        MemReleased(MemOwnerNotif) = MEM_RELEASED,
        /// MEM_ACCEPTED.
        MemAccepted(MemOwnerNotif) = MEM_ACCEPTED,
        /// MEM_RECALL.
        MemRecall(MemRecall) = MEM_RECALL,
        /// VM_EXITED.
        VmExited(VmExited<'a>) = VM_EXITED,
        /// VM_SHUTDOWN (u32 stop_reason).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::stop_reason_word"))]
        VmShutdown(Word) = VM_SHUTDOWN,
        /// VM_STATUS.
        VmStatus(VmStatusNotif) = VM_STATUS,
        /// VM_IRQ_LENT.
        VmIrqLent(VmIrqLentNotif) = VM_IRQ_LENT,
        /// VM_IRQ_RELEASED (virq_handle).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::virq_handle"))]
        VmIrqReleased(Word) = VM_IRQ_RELEASED,
        /// VM_IRQ_ACCEPTED (virq_handle).
        #[cfg_attr(feature = "serde", serde(serialize_with = "crate::ser::virq_handle"))]
        VmIrqAccepted(Word) = VM_IRQ_ACCEPTED,
        /// VM_CONSOLE_CHARS.
        VmConsoleChars(ConsoleChars<'a>) = VM_CONSOLE_CHARS,
        /// COW_BROKEN.
        CowBroken(CowBroken<'a>) = COW_BROKEN,
        /// QUOTA_EXHAUSTED.
        QuotaExhausted(QuotaExhausted) = QUOTA_EXHAUSTED,
        /// FAULT_UNSERVED.
        FaultUnserved(FaultUnserved) = FAULT_UNSERVED,
    }
}

impl Notification<'_> {
    /// Encode into `scratch` and return the packets of the notification.
    pub fn packets<'b>(
        &self,
        seq: u16,
        scratch: &'b mut [u8],
    ) -> Result<Fragmenter<'b>, EncodeError> {
        let n = self.encode(scratch)?;
        Ok(Fragmenter::notification(seq, self.msg_id(), &scratch[..n])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OsState, VmState};

    #[test]
    fn vm_status_by_hand() {
        // vmid 0x81, RUNNING(3), os BOOT(2), app 0x0102.
        let n = Notification::decode(MsgId(0x5610_0008), &[0x81, 0, 0, 0, 3, 2, 2, 1]).unwrap();
        assert_eq!(
            n,
            Notification::VmStatus(VmStatusNotif::new(
                0x81,
                VmState::Running,
                OsState::Boot,
                0x0102
            ))
        );
        assert_eq!(
            Notification::decode(MsgId::VM_STATUS, &[0x81, 0, 0, 0, 3, 2, 2]),
            Err(RmError::MsgInvalid)
        );
    }

    #[test]
    fn fault_unserved_by_hand() {
        // VM 0x81, why 1 (no CoW), action 2 (stopped), ipa 0x1_0000_3000.
        let b = [0x81, 0, 1, 2, 0, 0, 0, 0, 0, 0x30, 0, 0, 1, 0, 0, 0];
        let n = Notification::decode(MsgId(0x4710_0003), &b).unwrap();
        assert_eq!(
            n,
            Notification::FaultUnserved(crate::ext::FaultUnserved::new(0x81, 1, 2, 0x1_0000_3000))
        );
        assert_eq!(
            Notification::decode(MsgId(0x4710_0003), &b[..15]),
            Err(RmError::MsgInvalid)
        );
    }

    #[test]
    fn quota_exhausted_by_hand() {
        let mut b = [0u8; 24];
        b[0] = 0x80;
        b[4] = 5;
        b[11] = 0x40;
        b[16] = 0x10;
        let n = Notification::decode(MsgId(0x4710_0002), &b).unwrap();
        assert_eq!(
            n,
            Notification::QuotaExhausted(QuotaExhausted::new(0x80, 5, 0x4000_0000, 0x10))
        );
    }
}
