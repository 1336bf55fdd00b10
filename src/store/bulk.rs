//! Writes too large to hold in memory at once, made slice by slice inside one open
//! transaction: a round with a task per person of a city's pool ([`RoundWriter`]) and a
//! roster import ([`PeopleWriter`]). The caller produces each slice and hands it over; the
//! transaction is committed only by `commit`, and dropping the writer rolls it back
//! (sqlx rolls back a transaction dropped uncommitted), so the all-or-nothing rule of a
//! round start and of an import holds as when everything was written in one call.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Transaction, Type};

use super::shared::{Backend, Conn, Tx};
use super::{
    AuditEntry, Millis, NewTask, NewTimer, PeopleWriter, PersonRow, PoolWrite, Result, RoundWriter,
};
use crate::core::pool::Person;

/// A round being created (see [`super::Store::begin_round`]).
pub(crate) struct TxRound<'a, B: Backend> {
    pub(crate) store: &'a B,
    pub(crate) tx: Transaction<'static, B::Db>,
    pub(crate) id: i64,
    pub(crate) created_at: Millis,
    /// Timers written so far (the backend may refresh statistics after a large burst).
    pub(crate) timers: u64,
}

#[async_trait]
impl<B> RoundWriter for TxRound<'_, B>
where
    B: Backend,
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    fn id(&self) -> i64 {
        self.id
    }

    async fn add(&mut self, tasks: &[NewTask], timers: &[NewTimer]) -> Result<()> {
        Tx::<B>::insert_round_slice(&mut self.tx, self.id, self.created_at, tasks, timers).await?;
        self.timers += timers.len() as u64;
        Ok(())
    }

    async fn commit(self: Box<Self>, audit: AuditEntry) -> Result<()> {
        let TxRound {
            store,
            mut tx,
            timers,
            ..
        } = *self;
        Tx::<B>::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        store.after_timers_added(timers).await?;
        Ok(())
    }
}

/// People being written (see [`super::Store::begin_people`]).
pub(crate) struct TxPeople<B: Backend> {
    pub(crate) tx: Transaction<'static, B::Db>,
    pub(crate) who: PoolWrite,
}

#[async_trait]
impl<B> PeopleWriter for TxPeople<B>
where
    B: Backend,
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<B::Db as Database>::Row>,
{
    async fn person(&mut self, id: i64) -> Result<Option<PersonRow>> {
        Tx::<B>::person(&mut self.tx, id).await
    }

    async fn add(&mut self, people: &[Person]) -> Result<Vec<i64>> {
        Tx::<B>::insert_people(&mut self.tx, people, &self.who).await
    }

    async fn update(&mut self, id: i64, person: &Person) -> Result<bool> {
        Tx::<B>::update_person(&mut self.tx, id, person, &self.who).await
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}
