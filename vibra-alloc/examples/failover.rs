//! The failure-recovery run of dissertation figure 4.4, driven through the agent and the VM
//! directory: four VMs with 2.7 MB/s each (R = 2), VM 1 killed at t = 60 s, its replacement
//! started at t = 120 s with a 30 s warm-up. Usage is synthetic (the takers absorb the dead
//! VM's load); every plan is applied to the directory, which checks the customer's bound.
//!
//! Run: `cargo run -p vibra-alloc --example failover`

use std::time::Duration;

use vibra_alloc::{
    Agent, CustomerId, HostId, InMemoryDirectory, KindConfig, ResourceKind, VmDirectory, VmId,
    VmPhase,
};

const CUSTOMER: CustomerId = CustomerId(1);

fn main() -> Result<(), vibra_alloc::Error> {
    let bw = ResourceKind::Bandwidth;
    let vms = [VmId(0), VmId(1), VmId(2), VmId(3)];
    // 1 unit = 1 kB/s; 4 x 2.7 MB/s.
    let pool = 4 * 2_700;

    let dir = InMemoryDirectory::new();
    dir.add_customer(CUSTOMER, [(bw.clone(), pool)].into())?;
    for (h, &vm) in vms.iter().enumerate() {
        // Section 4.2.3: each VM of a cluster on its own host.
        dir.add_host(HostId(h as u32), [(bw.clone(), 12_500)].into())?;
        dir.add_vm(vm, CUSTOMER, HostId(h as u32), [(bw.clone(), 2_700)].into())?;
    }

    let mut cfg = KindConfig::bandwidth(pool);
    cfg.floor = 200;
    cfg.hysteresis = 20;
    cfg.initial = Some(vec![2_700; 4]);
    let mut agent = Agent::new(&vms, 2, Duration::from_secs(30), vec![cfg])?;

    println!("   t  phase of vm1   vm0   vm1   vm2   vm3   sum (kB/s)");
    for t in 0..=180u64 {
        let now = Duration::from_secs(t);
        let mut plans = Vec::new();
        if t == 60 {
            plans.extend(agent.fail(VmId(1), now)?);
        }
        if t == 120 {
            plans.extend(agent.replacement_started(VmId(1), now)?);
        }
        // Usage, measured every second: VM 1's load moves to VMs 2 and 3 while it is down.
        let down = agent.phase(VmId(1))? == VmPhase::Failed;
        let usage = if down {
            [2_100.0, 0.0, 3_300.0, 3_100.0]
        } else {
            [2_100.0, 2_600.0, 2_300.0, 2_000.0]
        };
        agent.observe(&bw, &usage)?;
        plans.extend(agent.tick(now)?);
        for p in &plans {
            dir.apply(CUSTOMER, &p.kind, &p.plan)?;
        }
        if !plans.is_empty() || t % 30 == 0 {
            let a: Vec<u64> = vms
                .iter()
                .map(|&v| dir.vm(v).map(|r| r.allocation[&bw]))
                .collect::<Result<_, _>>()?;
            println!(
                "{t:4}  {:<11} {:5} {:5} {:5} {:5}   {}",
                format!("{:?}", agent.phase(VmId(1))?),
                a[0],
                a[1],
                a[2],
                a[3],
                dir.customer_total(CUSTOMER, &bw)?
            );
        }
    }
    Ok(())
}
