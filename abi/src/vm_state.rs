//! VM states, OS states and exit types (spec §5.1, §5.4).

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident: $repr:ty { $( $(#[$d:meta])* $var:ident = $val:expr => $s:expr, )* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$d])* $var, )*
        }

        impl $name {
            /// Every value with its name.
            pub const ALL: &'static [$name] = &[$($name::$var),*];

            /// The wire value.
            pub const fn raw(self) -> $repr {
                match self { $( $name::$var => $val, )* }
            }

            /// Decode a wire value; `None` if this crate does not know it.
            pub const fn from_raw(v: $repr) -> Option<$name> {
                match v { $( $val => Some($name::$var), )* _ => None }
            }

            /// The spec's name.
            pub const fn name(self) -> &'static str {
                match self { $( $name::$var => $s, )* }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// `vm_state_t` / `gunyah_rm_vm_status` (§5.1). Value 7 is reserved.
    VmState: u8 {
        /// 0: no state (RM `VM_STATE_NONE`).
        NoState = 0 => "NO_STATE",
        /// 1: initialised.
        Init = 1 => "INIT",
        /// 2: ready to start.
        Ready = 2 => "READY",
        /// 3: running.
        Running = 3 => "RUNNING",
        /// 4: paused.
        Paused = 4 => "PAUSED",
        /// 5: allocated, image loading.
        Load = 5 => "LOAD",
        /// 6: authenticating.
        Auth = 6 => "AUTH",
        /// 8: initialisation failed.
        InitFailed = 8 => "INIT_FAILED",
        /// 9: exited.
        Exited = 9 => "EXITED",
        /// 10: reset in progress.
        Resetting = 10 => "RESETTING",
        /// 11: reset complete.
        Reset = 11 => "RESET",
    }
}

wire_enum! {
    /// `os_state_t` (§5.1).
    OsState: u8 {
        /// 0.
        None = 0 => "NONE",
        /// 1.
        EarlyBoot = 1 => "EARLY_BOOT",
        /// 2.
        Boot = 2 => "BOOT",
        /// 3.
        Init = 3 => "INIT",
        /// 4.
        Run = 4 => "RUN",
        /// 5.
        Shutdown = 5 => "SHUTDOWN",
        /// 6.
        Halted = 6 => "HALTED",
        /// 7.
        Crashed = 7 => "CRASHED",
    }
}

wire_enum! {
    /// VM_EXITED exit_type (§5.4), RM names.
    ExitType: u16 {
        /// 0: the VM asked to exit (VM_EXIT).
        VmExit = 0 => "VM_EXIT",
        /// 1: platform power off (OOT SYSTEM_OFF).
        PlatformOff = 1 => "PLATFORM_OFF",
        /// 2: platform reset (OOT SYSTEM_RESET).
        PlatformReset = 2 => "PLATFORM_RESET",
        /// 3: PSCI SYSTEM_RESET2.
        PsciSystemReset2 = 3 => "PSCI_SYSTEM_RESET2",
        /// 4: watchdog bite.
        WatchdogBite = 4 => "WATCHDOG_BITE",
        /// 5: software error (OOT HYP_ERROR).
        SoftwareError = 5 => "SOFTWARE_ERROR",
        /// 6: asynchronous hardware error (OOT ASYNC_EXT_ABORT).
        AsyncHwError = 6 => "ASYNC_HW_ERROR",
        /// 7: VM_STOP with FORCE.
        VmStopForced = 7 => "VM_STOP_FORCED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_spec() {
        assert_eq!(VmState::from_raw(3), Some(VmState::Running));
        assert_eq!(VmState::from_raw(7), None);
        assert_eq!(VmState::Reset.raw(), 11);
        assert_eq!(VmState::InitFailed.raw(), 8);
        assert_eq!(OsState::Crashed.raw(), 7);
        assert_eq!(OsState::from_raw(8), None);
        assert_eq!(ExitType::VmStopForced.raw(), 7);
        assert_eq!(ExitType::from_raw(4), Some(ExitType::WatchdogBite));
        assert_eq!(ExitType::from_raw(8), None);
        assert_eq!(VmState::Load.name(), "LOAD");
    }
}
