//! The DICOM edge: the network node of `lianyi_dicom` with the imaging service behind
//! it. The node reads and checks; `lianyi_imaging` admits callers, keeps and indexes.

use std::net::IpAddr;
use std::sync::Arc;

use lianyi_dicom::node::{NodeConfig, Outgoing, Peer, Provider, Received, Refused, Status};
use lianyi_dicom::query::Query;
use lianyi_imaging::Imaging;
use lianyi_imaging::ingest::{NotKept, Sender};
use serde_json::{Map, Value};
use tokio::net::TcpListener;

struct Node {
    imaging: Imaging,
    ae_title: String,
}

impl Provider for Node {
    type Known = Arc<Sender>;

    fn admit(&self, calling_ae: &str, called_ae: &str, ip: IpAddr) -> Result<Self::Known, Refused> {
        self.imaging.admit(&self.ae_title, calling_ae, called_ae, ip).map(|ae| Arc::new(Sender::new(ae)))
    }

    fn default_charset(&self, known: &Self::Known) -> Option<String> {
        known.ae.charset.clone()
    }

    async fn store(&self, peer: &Peer<Self::Known>, received: Received) -> Status {
        match self.imaging.keep(&peer.known, &received.instance, received.data_set).await {
            Ok(()) => Status::SUCCESS,
            Err(NotKept::OutOfResources(why)) => Status::failed(0xA700, why),
            Err(NotKept::Failed(why)) => {
                tracing::warn!(ae = %peer.calling_ae, error = %why, "DICOM instance not kept");
                metrics::counter!("lianyi_dicom_store_failures_total").increment(1);
                Status::failed(0x0110, why)
            }
        }
    }

    async fn find(&self, peer: &Peer<Self::Known>, query: Query) -> Result<Vec<Map<String, Value>>, Status> {
        self.imaging.find(&peer.known, &self.ae_title, &query).await.map_err(|e| {
            tracing::warn!(ae = %peer.calling_ae, error = %e, "C-FIND failed");
            Status::failed(0xC001, "the query could not be answered")
        })
    }

    async fn retrieve(&self, peer: &Peer<Self::Known>, query: Query) -> Result<Vec<Outgoing>, Status> {
        match self.imaging.retrieve(&peer.known, &query).await {
            Ok(rows) => Ok(rows
                .into_iter()
                .map(|r| Outgoing {
                    sop_class: r.sop_class,
                    sop_instance: r.sop_uid,
                    transfer_syntax: r.transfer_syntax,
                    path: self.imaging.folder().join(r.file),
                })
                .collect()),
            Err(lianyi_imaging::ImagingError::Invalid(e)) => {
                Err(Status::failed(0xA900, e.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>().join("; ")))
            }
            Err(e) => {
                tracing::warn!(ae = %peer.calling_ae, error = %e, "retrieve failed");
                Err(Status::failed(0xC000, "the retrieve could not be answered"))
            }
        }
    }

    fn destination(&self, _peer: &Peer<Self::Known>, ae_title: &str) -> Option<std::net::SocketAddr> {
        self.imaging.destination(ae_title)
    }

    async fn ended(&self, _peer: &Peer<Self::Known>) {
        self.imaging.settle_soon();
    }
}

/// Serves the DICOM node on `listener` as `config.ae_title` until the task is dropped.
/// The AE table is loaded first.
pub async fn serve_dicom(listener: TcpListener, imaging: Imaging, config: NodeConfig) {
    if let Err(e) = imaging.reload_aes().await {
        tracing::error!(error = %e, "the DICOM AE table could not be loaded: every caller is refused until it is");
    }
    // Changes made elsewhere (`lianyi ae` at the command line) apply within seconds.
    let reloading = imaging.clone();
    let _reloader = AbortOnDrop(tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            if let Err(e) = reloading.reload_aes().await {
                tracing::debug!(error = %e, "the DICOM AE table was not reloaded");
            }
        }
    }));
    let node = Arc::new(Node { imaging, ae_title: config.ae_title.clone() });
    lianyi_dicom::node::serve(listener, config, node).await;
}

/// Stops the task when the node's task is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
