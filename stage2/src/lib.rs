//! VMSAv8-64 stage-2 translation tables and fault decoding.
#![no_std]
