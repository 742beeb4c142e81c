//! Horizontal bar charts (SVG, no font dependency) for the lab's and the benchmarks'
//! reports.

use plotters::coord::Shift;
use plotters::prelude::*;

/// One panel of horizontal bars, one per `(name, value)`, top to bottom.
///
/// ```
/// use plotters::prelude::*;
/// use tether_tools::chart::{Bars, draw};
///
/// let mut svg = String::new();
/// {
///     let root = SVGBackend::with_string(&mut svg, (600, 200)).into_drawing_area();
///     let bars = vec![("memory".to_owned(), 1.2), ("redis".to_owned(), 0.8)];
///     let panel = Bars {
///         title: "ratio",
///         bars: &bars,
///         label: |v| format!("{v:.2}×"),
///         colour: |v| if v >= 1.0 { RGBColor(46, 140, 80) } else { RGBColor(200, 70, 60) },
///         reference: Some(1.0),
///     };
///     draw(&root, &panel)?;
///     root.present().map_err(|e| e.to_string())?;
/// }
/// assert!(svg.contains("memory") && svg.contains("0.80×"));
/// # Ok::<(), String>(())
/// ```
pub struct Bars<'a> {
    /// The panel's caption.
    pub title: &'a str,
    /// The bars, top to bottom.
    pub bars: &'a [(String, f64)],
    /// How a value is written at the end of its bar.
    pub label: fn(f64) -> String,
    /// A bar's colour, by its value.
    pub colour: fn(f64) -> RGBColor,
    /// A vertical line at this value (1.0 for ratios), kept inside the axis.
    pub reference: Option<f64>,
}

/// Draws `panel` on `area`; the error is plotters' message.
pub fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Bars) -> Result<(), String> {
    let error = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let bars = panel.bars;
    let k = u32::try_from(bars.len()).map_err(|e| e.to_string())?;
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .chain(panel.reference)
        .fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.2 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(150)
        .build_cartesian_2d(0.0..top, (0..k).into_segmented())
        .map_err(error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => bars
                .get(*i as usize)
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(error)?;
    chart
        .draw_series(bars.iter().zip(0..).map(|((_, v), i)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                (panel.colour)(*v).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        }))
        .map_err(error)?;
    chart
        .draw_series(bars.iter().zip(0..).map(|((_, v), i)| {
            Text::new(
                (panel.label)(*v),
                (*v, SegmentValue::CenterOf(i)),
                ("sans-serif", 12),
            )
        }))
        .map_err(error)?;
    if let Some(x) = panel.reference {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, SegmentValue::Exact(0)), (x, SegmentValue::Exact(k))],
                BLACK,
            )))
            .map_err(error)?;
    }
    Ok(())
}
