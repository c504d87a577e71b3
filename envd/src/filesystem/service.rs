//! The gRPC FilesystemService.
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wrenn_proto::envd::v1::filesystem_service_server::FilesystemService;
use wrenn_proto::envd::v1::{
    watch_dir_response, ListDirRequest, ListDirResponse, MakeDirRequest, MakeDirResponse,
    MoveRequest, MoveResponse, RemoveRequest, RemoveResponse, StatRequest, StatResponse,
    WatchDirRequest, WatchDirResponse,
};

use super::watch::Watch;
use crate::capsule::Capsule;
use crate::processes::io_status;
use crate::processes::service::KEEPALIVE;
use crate::users::{Names, User};

pub struct FilesystemRpc {
    pub capsule: Arc<Capsule>,
}

impl FilesystemRpc {
    fn user(&self, requested: Option<&str>) -> Result<User, Status> {
        crate::users::lookup(&self.capsule.user_or_default(requested))
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }

    fn path(&self, path: &str, user: &User) -> Result<std::path::PathBuf, Status> {
        super::resolve(path, user).map_err(io_status)
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(io_status)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchDirResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FilesystemService for FilesystemRpc {
    type WatchDirStream = WatchStream;

    async fn stat(&self, request: Request<StatRequest>) -> Result<Response<StatResponse>, Status> {
        let req = request.into_inner();
        let user = self.user(req.user.as_deref())?;
        let path = self.path(&req.path, &user)?;
        let entry = blocking(move || super::entry(&path, &Names::load())).await?;
        Ok(Response::new(StatResponse { entry: Some(entry) }))
    }

    async fn list_dir(
        &self,
        request: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        let req = request.into_inner();
        let user = self.user(req.user.as_deref())?;
        let path = self.path(&req.path, &user)?;
        let entries = blocking(move || super::list(&path, req.depth, &Names::load())).await?;
        Ok(Response::new(ListDirResponse { entries }))
    }

    async fn make_dir(
        &self,
        request: Request<MakeDirRequest>,
    ) -> Result<Response<MakeDirResponse>, Status> {
        let req = request.into_inner();
        let user = self.user(req.user.as_deref())?;
        let path = self.path(&req.path, &user)?;
        let entry = blocking(move || {
            super::make_dir(&path, &user)?;
            super::entry(&path, &Names::load())
        })
        .await?;
        Ok(Response::new(MakeDirResponse { entry: Some(entry) }))
    }

    async fn r#move(
        &self,
        request: Request<MoveRequest>,
    ) -> Result<Response<MoveResponse>, Status> {
        let req = request.into_inner();
        let user = self.user(req.user.as_deref())?;
        let source = self.path(&req.source, &user)?;
        let destination = self.path(&req.destination, &user)?;
        let entry = blocking(move || {
            std::fs::symlink_metadata(&source)?;
            std::fs::rename(&source, &destination)?;
            super::entry(&destination, &Names::load())
        })
        .await?;
        Ok(Response::new(MoveResponse { entry: Some(entry) }))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<RemoveResponse>, Status> {
        let req = request.into_inner();
        let user = self.user(req.user.as_deref())?;
        let path = self.path(&req.path, &user)?;
        if path == std::path::Path::new("/") {
            return Err(Status::invalid_argument("refusing to remove /"));
        }
        blocking(move || super::remove(&path)).await?;
        Ok(Response::new(RemoveResponse {}))
    }

    async fn watch_dir(
        &self,
        request: Request<WatchDirRequest>,
    ) -> Result<Response<Self::WatchDirStream>, Status> {
        let req = request.into_inner();
        let user = self.user(req.user.as_deref())?;
        let path = self.path(&req.path, &user)?;
        let mut watch = Watch::new(&path, req.recursive).map_err(io_status)?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let wrap = |event| Ok(WatchDirResponse { event: Some(event) });
            if tx
                .send(wrap(watch_dir_response::Event::Start(Default::default())))
                .await
                .is_err()
            {
                return;
            }
            let mut keepalive =
                tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
            loop {
                tokio::select! {
                    batch = watch.next() => match batch {
                        Ok(Some(events)) => {
                            for e in events {
                                if tx.send(wrap(watch_dir_response::Event::Filesystem(e))).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(io_status(e))).await;
                            return;
                        }
                    },
                    _ = keepalive.tick() => {
                        if tx.send(wrap(watch_dir_response::Event::Keepalive(Default::default()))).await.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
