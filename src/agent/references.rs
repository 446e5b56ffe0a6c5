//! What a plan points at besides the image: a checksum file and a config
//! drive given as URLs, fetched before the disk is touched.

use crate::deploy::configdrive::{self, ConfigDrive};
use crate::net::client::{self, Policy};
use crate::net::Transport;
use crate::plan::{self, Checksum, Plan};

fn need_net(what: &str, url: &str) -> String {
    format!("{what} {url}: downloading it needs rivet's network stack (--iface NAME)")
}

/// Replaces a checksum URL by its value and reads the config drive
/// (fetching it if it is a URL), held compressed. `net` is None when there
/// is no network.
pub fn resolve<T: Transport + ?Sized>(
    plan: &mut Plan,
    mut net: Option<&mut T>,
) -> Result<Option<ConfigDrive>, String> {
    if let Checksum::Url(algo, url) = plan.checksum.clone() {
        let t = net
            .as_deref_mut()
            .ok_or_else(|| need_net("checksum", &url))?;
        // The checksum file goes with the image's authorization, as the
        // real agent sends it (a registry serves both).
        let mut text = Vec::new();
        client::get_streaming(
            t,
            &url,
            1 << 20,
            Policy::default(),
            &client::Access::of(plan),
            &mut |piece| {
                text.extend_from_slice(piece);
                Ok(())
            },
        )
        .map_err(|e| format!("checksum file: {e}"))?;
        let image_url = plan.urls.first().cloned().unwrap_or_default();
        plan.checksum =
            plan::parse_checksum_file(&String::from_utf8_lossy(&text), &image_url, algo)
                .map_err(|e| e.to_string())?;
    }
    match plan.configdrive.as_deref() {
        None => Ok(None),
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
            let t = net.ok_or_else(|| need_net("configdrive", s))?;
            let image_over_network = plan
                .urls
                .first()
                .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"));
            if image_over_network {
                // Measured now, streamed again onto its partition by the
                // image's connection: never held (it may be 64 MiB).
                return ConfigDrive::measure_remote(s, |sink| {
                    client::get_streaming(
                        t,
                        s,
                        configdrive::MAX_DOWNLOAD,
                        Policy::default(),
                        &Default::default(),
                        sink,
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                })
                .map(Some)
                .map_err(|e| format!("configdrive: {e}"));
            }
            let bytes = client::get(t, s, configdrive::MAX_DECODED, Policy::default())
                .map_err(|e| format!("configdrive: {e}"))?;
            Ok(Some(ConfigDrive::from_downloaded(bytes)?))
        }
        Some(s) => Ok(Some(ConfigDrive::from_inline(s)?)),
    }
}
