//! A record layer between a TCP connection and HTTP (TLS, in practice).
//! The no_std core moves bytes through it without knowing the protocol;
//! `linux::tls` implements it with rustls.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

pub trait Secure {
    /// Takes bytes received from the peer. An error ends the connection
    /// (a failed handshake, a forged record).
    fn receive(&mut self, wire: &[u8]) -> Result<(), String>;
    /// Appends the plaintext decrypted so far.
    fn plaintext(&mut self, out: &mut Vec<u8>);
    /// Queues plaintext for the peer.
    fn send(&mut self, plain: &[u8]);
    /// Queues the closing alert.
    fn close(&mut self);
    /// Appends the bytes waiting for the wire.
    fn outgoing(&mut self, wire: &mut Vec<u8>);
}

/// Makes the record layer of each accepted connection.
pub type SecureFactory = Box<dyn FnMut() -> Box<dyn Secure>>;
